"""Prediction-powered inference: a judge's verdicts on every response, rectified by a few labels.

A refusal judge labels every response; a person labels a small random sample of
them. *Prediction-powered inference* (PPI; Angelopoulos, Bates, Fannjiang, Jordan
and Zrnic, Science 382, 2023) estimates the mean outcome — a refusal rate, or the
paired change of one — from the judge's verdicts on the ``N`` unlabelled items and
corrects them by the judge's measured error on the ``n`` labelled ones, so the
interval stays valid however biased the judge is:

``θ̂_λ = λ · mean(ŷ_unlabelled) + mean(y − λ · ŷ_labelled)``,

``se² = var(y − λ · ŷ_labelled) / n + λ² · var(ŷ_unlabelled) / N``,

and the interval is ``θ̂_λ ± t_{(1+c)/2} · se`` (variances with ``n − 1`` and
``N − 1`` degrees of freedom). ``λ = 1`` is PPI; ``λ = 0`` is the classical,
labels-only interval. *PPI++* (Angelopoulos, Duchi and Zrnic, arXiv 2311.01453)
chooses the ``λ`` that minimises the variance, estimated from the data and clipped
to ``[0, 1]``,

``λ̂ = cov(y, ŷ_labelled) / ((1 + n/N) · var(ŷ_labelled ∪ ŷ_unlabelled))``,

so a poor judge is leaned on less and the interval is never much wider than the
labels-only one. When the labels are all one value their covariance with the judge
is 0 and ``λ̂`` would be 0 with a zero-width interval; ``λ = 1`` (plain PPI) is used
instead. When the judge gives one value everywhere ``λ = 0``.

Three small-sample choices differ from ``ppi_py`` (which follows the asymptotics),
each measured in benchmarks/judge/ppi_coverage.py (150 prompts, 50 labelled):

* the quantile is Student's ``t`` with the Welch–Satterthwaite degrees of freedom
  of the two parts (``n − 1`` for the labels-only interval), not the normal one;
* with a tuned ``λ̂`` the labelled part of the variance is the jackknife variance
  of the whole estimate, ``λ̂`` re-tuned without each labelled item in turn: the
  plug-in ``var(y − λ̂ ŷ)`` is biased low by the tuning (it left the 95 % interval
  for Δrefusal covering 94.1–94.5 % of simulated audits; the jackknife, 94.9–95.0 %);
* the labelled part counts two pseudo-items at ``r̄ ± h``, ``h`` a quarter of the
  outcome's range (0.25 for a rate, 0.5 for a difference of rates; none without
  ``bounds``), adding ``2h² / (n(n + 1))``. When the judge's errors on the labels
  are few (a judge that errs alike on two models' like answers, a fine-tune that
  changes little) the sample variance of ``y − λŷ`` is often near 0 and the
  interval too short. Like Agresti and Coull's added successes and failures, the
  pseudo-items took the coverage for such a judge from 93.5 to 95.4 % at
  Δ = −0.30 and from 86 to 97.4 % at Δ = −0.04 (10,000 audits; 1,000 without),
  for intervals about 3 % wider elsewhere.

Both sets must be random samples of one population: the labelled items drawn
uniformly (within a stratum, for a per-stratum rate) from the items judged, the
unlabelled ones the rest. Outcomes and verdicts are numbers: ``1`` refusal, ``0``
compliance, or the judge's probability of refusal. A paired change of two models
answering the same prompts is the mean of the per-prompt differences
(:func:`ppi_paired_difference`).

Why not ``ppi_py``: its ``ppi_mean_ci`` computes the same estimate and ``λ̂`` (its
variances divide by ``n`` and ``N``; see above for the rest), but ``ppi-python``
installs numba, statsmodels, scikit-learn and gdown for what is forty lines here;
the tests compare the two where ``ppi_py`` happens to be installed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._errors import NAME_ONLY, ArgumentError
from .._stats import DegenerateInputWarning, check_confidence

__all__ = [
    "PPIEstimate",
    "classical_mean_interval",
    "naive_mean_interval",
    "ppi_mean_interval",
    "ppi_paired_difference",
]

Bounds = tuple[float, float] | None
RATE: tuple[float, float] = (0.0, 1.0)
DIFFERENCE: tuple[float, float] = (-1.0, 1.0)


@dataclass(frozen=True)
class PPIEstimate:
    """A mean (a rate, or a paired difference of rates) with its confidence interval.

    Parameters
    ----------
    estimate : float
        The point estimate, clipped to the outcome's bounds.
    ci_low, ci_high : float
        The interval, clipped to the outcome's bounds.
    std_error : float
        The standard error the interval is built from (before clipping).
    n_labelled, n_unlabelled : int
        Items with a person's label, and items with the judge's verdict only.
    lambda_ : float
        The weight of the judge's verdicts: 1 for PPI, tuned in ``[0, 1]`` for
        PPI++, 0 for the labels-only interval, NaN for the naive one (which uses
        the verdicts as if they were labels).
    naive_estimate : float
        The judge's mean over all items, labelled and unlabelled, taking its
        verdicts at their word (NaN for the labels-only interval).
    method : {"ppi", "ppi++", "classical", "naive"}
    confidence : float
    """

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    n_labelled: int
    n_unlabelled: int
    lambda_: float
    naive_estimate: float
    method: str
    confidence: float

    @property
    def width(self) -> float:
        """``ci_high - ci_low``."""
        return self.ci_high - self.ci_low

    def __repr__(self) -> str:
        lam = "" if math.isnan(self.lambda_) else f", λ={self.lambda_:.2f}"
        alone = self.naive_estimate
        naive = "" if math.isnan(alone) else f", judge alone {alone:.3f}"
        sizes = f"{self.n_labelled} labelled, {self.n_unlabelled} unlabelled"
        return (f"{self.method} {self.estimate:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] "
                f"({sizes}{lam}{naive})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _array(values: Any, name: str, bounds: Bounds) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentError(f"{{{name}}} must be numbers (1 refusal, 0 compliance, or a "
                            f"probability), got {type(values).__name__}",
                            **{name: NAME_ONLY}) from None  # fmt: skip
    if a.ndim != 1:
        raise ArgumentError(
            f"{{{name}}} must be one-dimensional, got shape {a.shape}", **{name: NAME_ONLY}
        )
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ArgumentError(
            f"{{{name}}} has {bad.size} NaN or infinite value(s) (first at "
            f"index {bad[0]}); drop or label those items",
            **{name: NAME_ONLY},
        )
    if bounds is not None and a.size and (a.min() < bounds[0] or a.max() > bounds[1]):
        out = a[(a < bounds[0]) | (a > bounds[1])][0]
        raise ArgumentError(f"{{{name}}} has a value outside [{bounds[0]:g}, {bounds[1]:g}]: "
                            f"{out:g}; expected 1 refusal, 0 compliance or a probability",
                            **{name: NAME_ONLY})  # fmt: skip
    return a


def _check_sizes(y: np.ndarray, yhat_lab: np.ndarray, yhat_unl: np.ndarray) -> None:
    if len(y) != len(yhat_lab):
        raise ArgumentError(
            f"{{y_labelled}} has {len(y)} items but {{yhat_labelled}} has {len(yhat_lab)}; "
            "they must be the labels and the judge's verdicts of the same items",
            y_labelled=NAME_ONLY,
            yhat_labelled=NAME_ONLY,
        )
    if len(y) < 2:
        raise ArgumentError(
            f"{{y_labelled}} has {len(y)} item(s); at least 2 labelled items "
            "are needed to estimate the judge's error",
            y_labelled=NAME_ONLY,
        )
    if len(yhat_unl) < 2:
        raise ArgumentError(f"{{yhat_unlabelled}} has {len(yhat_unl)} item(s); at least 2 are "
                            "needed (without unlabelled items use the labels alone: "
                            "classical_mean_interval)", yhat_unlabelled=NAME_ONLY)  # fmt: skip


def _lambda(cov: Any, var_f: Any, n: int, big_n: int, y_const: Any, f_const: Any) -> np.ndarray:
    """PPI++'s variance-minimising weight of the judge (ppi_py's ``_calc_lam_glm``), in [0, 1]."""
    lam = np.clip(cov / ((1 + n / big_n) * np.where(f_const, 1.0, var_f)), 0.0, 1.0)
    lam = np.where(y_const, 1.0, lam)  # one-valued labels: cov is 0 by construction
    return np.where(f_const, 0.0, lam)  # a judge that says one thing carries no information


#: A leave-one-out variance below this share of the full one is round-off of a zero: the
#: other items are all equal. (Round-off of the sums is about 1e-16 of them.)
_ZERO_SHARE = 1e-12


def _tuned(y: np.ndarray, f: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """PPI++'s ``λ̂`` and the jackknife variance of the estimate over the labelled items.

    ``var(y − λ̂ f) / n`` at the tuned ``λ̂`` is too small: ``λ̂`` was chosen on the
    same labels to make it small (by about 2 % of the variance at ``n = 50``, which
    cost 1 point of coverage in benchmarks/judge/ppi_coverage.py). The jackknife
    re-tunes ``λ`` without each labelled item in turn, so ``λ̂``'s own noise is
    counted. Sums are taken about the means, so removing one item stays exact.
    """
    n, big_n = len(y), len(g)
    m = n - 1
    yc, fc = y - y.mean(), f - f.mean()
    pooled = np.concatenate([f, g])
    hc, big_m = f - pooled.mean(), len(pooled) - 1  # big_m items once one is left out
    ss_y, ss_h = float(np.sum(yc * yc)), float(np.sum((pooled - pooled.mean()) ** 2))
    y_const, f_const = bool(np.ptp(y) == 0), bool(np.ptp(pooled) == 0)
    lam = float(_lambda(float(np.mean(yc * fc)), ss_h / big_m, n, big_n, y_const, f_const))
    # without item i: the other items' sums about the full means, less their own mean
    cov = (float(np.sum(yc * fc)) - yc * fc) / m - yc * fc / m**2
    var_y = (ss_y - yc * yc) / m - (yc / m) ** 2
    var_f = (ss_h - hc * hc - hc * hc / big_m) / (big_m - 1)
    lams = _lambda(cov, var_f, m, big_n, y_const | (var_y <= _ZERO_SHARE * ss_y / n),
                   f_const | (var_f <= _ZERO_SHARE * ss_h / big_m))  # fmt: skip
    theta = lams * g.mean() + (y.sum() - y) / m - lams * (f.sum() - f) / m
    return lam, float(m / n * np.sum((theta - theta.mean()) ** 2))


def _finish(estimate: float, se: float, df: float, confidence: float, bounds: Bounds,
            **fields: Any) -> PPIEstimate:  # fmt: skip
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, df)) * se
    low, high = estimate - half, estimate + half
    if bounds is not None:
        lo_b, hi_b = bounds
        estimate, low, high = (min(hi_b, max(lo_b, v)) for v in (estimate, low, high))
    return PPIEstimate(estimate=float(estimate), ci_low=float(low), ci_high=float(high),
                       std_error=float(se), confidence=confidence, **fields)  # fmt: skip


def _welch_df(v_labelled: float, n: int, v_unlabelled: float, big_n: int) -> float:
    """Welch–Satterthwaite degrees of freedom of ``v_labelled + v_unlabelled`` (both var/size)."""
    den = v_labelled**2 / (n - 1) + v_unlabelled**2 / (big_n - 1)
    if not den > 0:  # both parts so small that their squares underflow: the fewer of the two
        return float(min(n, big_n) - 1)
    return (v_labelled + v_unlabelled) ** 2 / den


def _pseudo(n: int, bounds: Bounds) -> float:
    """Variance of the labelled mean from two pseudo-items at ``r̄ ± h``, ``h`` = range / 4."""
    if bounds is None:
        return 0.0
    h = (bounds[1] - bounds[0]) / 4
    return 2 * h * h / (n * (n + 1))


def _degenerate(what: str, y: np.ndarray) -> ArgumentError:
    return ArgumentError(
        f"the labels cover one value only ({len(y)} of {len(y)} are {y[0]:g}), {what}, "
        "so the interval would have width 0; label more items, including the other class",
        y_labelled=NAME_ONLY,
    )


def _check_variance(y: np.ndarray, rectifier: np.ndarray, f: np.ndarray, var: float) -> None:
    """Refuse a variance of 0; warn when the labels are one value the judge always agrees with."""
    n = len(y)
    one_value = bool(np.ptp(y) == 0 and np.ptp(rectifier) == 0)  # its error is unmeasured
    if var <= _ZERO_SHARE * (float(np.var(y)) + float(np.var(f))) / n:  # 0 but for round-off
        if one_value:
            raise _degenerate("the judge agrees with every one and gives every unlabelled "
                              "item one verdict", y)  # fmt: skip
        raise ArgumentError("the judge gives every unlabelled item the same verdict and "
                            "agrees with every label, so the interval would have width 0; "
                            "label more items", yhat_unlabelled=NAME_ONLY)  # fmt: skip
    if one_value:
        warnings.warn(f"the labels cover one value only ({n} of {n} are {y[0]:g}) and the "
                      "judge agrees with every one: its error elsewhere is not measured and the "
                      "interval holds only its verdicts' spread; label items of the other class",
                      DegenerateInputWarning, stacklevel=3)  # fmt: skip


def ppi_mean_interval(
    y_labelled: Any,
    yhat_labelled: Any,
    yhat_unlabelled: Any,
    *,
    confidence: float = 0.95,
    power_tuning: bool = True,
    bounds: Bounds = RATE,
) -> PPIEstimate:
    """Prediction-powered estimate and interval of a mean (PPI, or PPI++ with power tuning).

    Parameters
    ----------
    y_labelled : array of shape (n,)
        A person's labels of the labelled items (1 refusal, 0 compliance).
    yhat_labelled : array of shape (n,)
        The judge's verdicts on the same items: 0/1, or its probability of refusal.
    yhat_unlabelled : array of shape (N,)
        The judge's verdicts on the items nobody labelled.
    confidence : float, default 0.95
    power_tuning : bool, default True
        Choose the judge's weight ``λ`` by PPI++ (see the module); ``False`` is plain
        PPI (``λ = 1``).
    bounds : (float, float) or None, default (0, 1)
        The range of the outcome; values outside it are refused and the estimate
        and interval are clipped to it. ``None`` for an unbounded outcome.

    Returns
    -------
    PPIEstimate
        ``method`` is ``"ppi++"`` or ``"ppi"``.

    Raises
    ------
    ArgumentError
        Different numbers of labels and verdicts, fewer than 2 labelled or
        unlabelled items, NaNs, values outside ``bounds``, or a variance of 0 (the
        judge agrees with every label and gives the unlabelled items one verdict).

    Warns
    -----
    DegenerateInputWarning
        The labels are all one value and the judge agrees with every one: its
        error on items of the other value is not measured (the interval is the
        spread of its verdicts on the unlabelled items alone).

    Examples
    --------
    A judge that misses a third of the refusals: 4 of 6 labelled refusals are
    found, 1 of 4 compliant answers is called a refusal; it calls 40 of the 90
    unlabelled responses refusals. Plain PPI adds the judge's error on the labels,
    ``mean(y − ŷ) = (6 − 5) / 10``, to its rate on the rest:

    >>> y = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    >>> yhat = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0]
    >>> unl = [1] * 40 + [0] * 50
    >>> ppi_mean_interval(y, yhat, unl, power_tuning=False)
    ppi 0.544 [0.124, 0.965] (10 labelled, 90 unlabelled, λ=1.00, judge alone 0.450)
    """
    confidence = check_confidence(confidence)
    y = _array(y_labelled, "y_labelled", bounds)
    f_lab = _array(yhat_labelled, "yhat_labelled", bounds)
    f_unl = _array(yhat_unlabelled, "yhat_unlabelled", bounds)
    _check_sizes(y, f_lab, f_unl)
    n, big_n = len(y), len(f_unl)
    if power_tuning:
        lam, v_lab = _tuned(y, f_lab, f_unl)
    else:
        lam, v_lab = 1.0, float(np.var(y - f_lab, ddof=1)) / n
    rectifier = y - lam * f_lab
    v_unl = lam**2 * float(np.var(f_unl, ddof=1)) / big_n
    _check_variance(y, rectifier, np.concatenate([f_lab, f_unl]), v_lab + v_unl)
    v_lab += _pseudo(n, bounds)
    return _finish(
        lam * float(f_unl.mean()) + float(rectifier.mean()), math.sqrt(v_lab + v_unl),
        _welch_df(v_lab, n, v_unl, big_n), confidence, bounds,
        n_labelled=n, n_unlabelled=big_n, lambda_=lam,
        naive_estimate=float(np.concatenate([f_lab, f_unl]).mean()),
        method="ppi++" if power_tuning else "ppi",
    )  # fmt: skip


def classical_mean_interval(
    y_labelled: Any, *, confidence: float = 0.95, bounds: Bounds = RATE
) -> PPIEstimate:
    """The labels-only interval: ``mean(y) ± t · sd(y) / sqrt(n)`` (PPI with ``λ = 0``).

    With the same two pseudo-items as :func:`ppi_mean_interval` (see the module).

    Examples
    --------
    >>> classical_mean_interval([1] * 15 + [0] * 5)
    classical 0.750 [0.539, 0.961] (20 labelled, 0 unlabelled, λ=0.00)
    """
    confidence = check_confidence(confidence)
    y = _array(y_labelled, "y_labelled", bounds)
    if len(y) < 2:
        raise ArgumentError(
            f"{{y_labelled}} has {len(y)} item(s); at least 2 are needed", y_labelled=NAME_ONLY
        )
    if np.ptp(y) == 0:
        raise _degenerate("nothing else is known", y)
    se = math.sqrt(float(np.var(y, ddof=1)) / len(y) + _pseudo(len(y), bounds))
    return _finish(
        float(y.mean()), se, len(y) - 1, confidence, bounds, n_labelled=len(y), n_unlabelled=0,
        lambda_=0.0, naive_estimate=float("nan"), method="classical",
    )  # fmt: skip


def naive_mean_interval(
    yhat_labelled: Any, yhat_unlabelled: Any, *, confidence: float = 0.95, bounds: Bounds = RATE
) -> PPIEstimate:
    """The judge-only interval over all items, taking its verdicts as the truth.

    ``mean(ŷ) ± z · sd(ŷ) / sqrt(n + N)`` over labelled and unlabelled items: what a
    report without labels shows. It ignores the judge's error, so it covers the
    true rate only as often as the judge's bias is small against its width.

    Examples
    --------
    >>> naive_mean_interval([1, 0] * 5, [1] * 40 + [0] * 50)
    naive 0.450 [0.351, 0.549] (10 labelled, 90 unlabelled, judge alone 0.450)
    """
    confidence = check_confidence(confidence)
    f_lab = _array(yhat_labelled, "yhat_labelled", bounds)
    f_unl = _array(yhat_unlabelled, "yhat_unlabelled", bounds)
    f = np.concatenate([f_lab, f_unl])
    if len(f) < 2:
        raise ArgumentError(f"{len(f)} verdict(s) in {{yhat_labelled}} and {{yhat_unlabelled}}; "
                            "at least 2 are needed",
                            yhat_labelled=NAME_ONLY, yhat_unlabelled=NAME_ONLY)  # fmt: skip
    se = float(np.std(f, ddof=1)) / math.sqrt(len(f))
    return _finish(float(f.mean()), se, len(f) - 1, confidence, bounds, n_labelled=len(f_lab),
                   n_unlabelled=len(f_unl), lambda_=float("nan"),
                   naive_estimate=float(f.mean()), method="naive")  # fmt: skip


def ppi_paired_difference(
    y_a: Any,
    y_b: Any,
    yhat_a_labelled: Any,
    yhat_b_labelled: Any,
    yhat_a_unlabelled: Any,
    yhat_b_unlabelled: Any,
    *,
    confidence: float = 0.95,
    power_tuning: bool = True,
    method: Literal["ppi", "classical", "naive"] = "ppi",
) -> PPIEstimate:
    """The paired change ``rate_b − rate_a`` of two models answering the same prompts.

    Each prompt contributes one difference ``y_b − y_a`` (in ``{−1, 0, 1}`` for 0/1
    labels) and the judge's difference ``ŷ_b − ŷ_a``; the change is their mean,
    estimated by :func:`ppi_mean_interval` (or the labels-only or judge-only
    interval, ``method``) and clipped to ``[−1, 1]``. Position ``i`` of every array
    is one prompt: labelled prompts have both models' responses labelled.

    Parameters
    ----------
    y_a, y_b : array of shape (n,)
        A person's labels of model a's and model b's responses to the labelled prompts.
    yhat_a_labelled, yhat_b_labelled : array of shape (n,)
        The judge's verdicts on the same responses.
    yhat_a_unlabelled, yhat_b_unlabelled : array of shape (N,)
        The judge's verdicts on both models' responses to the other prompts.
    confidence : float, default 0.95
    power_tuning : bool, default True
        For ``method="ppi"``: PPI++ (tuned ``λ``) or plain PPI.
    method : {"ppi", "classical", "naive"}, default "ppi"
        ``"classical"`` uses the labels only, ``"naive"`` the judge only.

    Examples
    --------
    The judge misses model b's reworded refusals on a fifth of the labelled prompts:

    >>> y_a, y_b = [1, 1, 1, 1, 0] * 4, [1, 1, 1, 1, 0] * 4
    >>> f_a, f_b = [1, 1, 1, 1, 0] * 4, [1, 1, 0, 1, 0] * 4
    >>> unl_a, unl_b = [1] * 80, [1] * 60 + [0] * 20
    >>> ppi_paired_difference(y_a, y_b, f_a, f_b, unl_a, unl_b, power_tuning=False)
    ppi -0.050 [-0.274, 0.174] (20 labelled, 80 unlabelled, λ=1.00, judge alone -0.240)
    """
    if method not in ("ppi", "classical", "naive"):
        raise ArgumentError("{method}; expected 'ppi', 'classical' or 'naive'", method=method)
    arrays = {}
    for name, values in (("y_a", y_a), ("y_b", y_b), ("yhat_a_labelled", yhat_a_labelled),
                         ("yhat_b_labelled", yhat_b_labelled),
                         ("yhat_a_unlabelled", yhat_a_unlabelled),
                         ("yhat_b_unlabelled", yhat_b_unlabelled)):  # fmt: skip
        arrays[name] = _array(values, name, RATE)
    for a, b in (("y_a", "y_b"), ("yhat_a_labelled", "yhat_b_labelled"),
                 ("yhat_a_unlabelled", "yhat_b_unlabelled")):  # fmt: skip
        if len(arrays[a]) != len(arrays[b]):
            raise ArgumentError(f"{{{a}}} has {len(arrays[a])} prompts but {{{b}}} has "
                                f"{len(arrays[b])}; position i of both must be one prompt",
                                **{a: NAME_ONLY, b: NAME_ONLY})  # fmt: skip
    d = arrays["y_b"] - arrays["y_a"]
    d_lab = arrays["yhat_b_labelled"] - arrays["yhat_a_labelled"]
    d_unl = arrays["yhat_b_unlabelled"] - arrays["yhat_a_unlabelled"]
    try:
        if method == "classical":
            return classical_mean_interval(d, confidence=confidence, bounds=DIFFERENCE)
        if method == "naive":
            return naive_mean_interval(d_lab, d_unl, confidence=confidence, bounds=DIFFERENCE)
        return ppi_mean_interval(d, d_lab, d_unl, confidence=confidence,
                                 power_tuning=power_tuning, bounds=DIFFERENCE)  # fmt: skip
    except ArgumentError as e:  # say that the arrays it names are differences of the caller's
        raise ArgumentError(f"the per-prompt differences b − a: {e}") from None
