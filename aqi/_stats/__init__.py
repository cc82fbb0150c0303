"""The statistics core shared by indices and probes: estimates, resampling, intervals, tests.

Every bootstrap in :mod:`aqi` draws its resamples here, as *count matrices*: a
resample of ``m`` rows is a row of multiplicities summing to ``m``, so a
statistic that is a sum over rows is resampled for all resamples at once by one
matrix product (no Python loop over resamples, no materialised copies).
Intervals, p-values and the argument validators used at every public boundary
live here too, so each concept has one definition.

The resampling contract (docs/audit.md, "Resampling"):

* ``n_boot=0`` (or ``n_perm=0``) means *none*: no interval, no p-value (NaN), silently.
* Fewer resamples than :func:`min_resamples` (:data:`MIN_RESAMPLES`, more at high
  confidence levels) give NaN with a :class:`TooFewResamplesWarning` — never an
  interval or a p-value read off a handful of draws. More than
  :data:`MAX_RESAMPLES` is refused.
* An interval always contains its point estimate: a bootstrap interval that would
  leave it out (a percentile interval of a biased statistic, or one drawn from
  few distinct resamples) is widened to reach it — never narrowed.

This package sits below every other module of :mod:`aqi` and imports none of them but the
progress bars (:mod:`aqi._progress`, a leaf). Its modules: :mod:`~aqi._stats.resamples`
(the contract's bounds, warnings and validators), :mod:`~aqi._stats.weights` (resampling),
:mod:`~aqi._stats.intervals` (estimates and intervals) and :mod:`~aqi._stats.pvalues`
(tests and multiplicity).
"""

from __future__ import annotations

from .intervals import (
    Estimate,
    basic_interval,
    contain,
    estimate,
    percentile_interval,
    wilson_interval,
)
from .pvalues import holm, normal_p_value, permutation_p_value
from .resamples import (
    MAX_RESAMPLES,
    MIN_RESAMPLES,
    DegenerateInputWarning,
    TooFewResamplesWarning,
    check_bootstrap_args,
    check_confidence,
    check_n_boot,
    check_probability,
    min_resamples,
    resamples_suffice,
)
from .weights import PairedWeights, resample_counts, stratified_weights

__all__ = [
    "MAX_RESAMPLES",
    "MIN_RESAMPLES",
    "DegenerateInputWarning",
    "Estimate",
    "PairedWeights",
    "TooFewResamplesWarning",
    "basic_interval",
    "check_bootstrap_args",
    "check_confidence",
    "check_n_boot",
    "check_probability",
    "contain",
    "estimate",
    "holm",
    "min_resamples",
    "normal_p_value",
    "percentile_interval",
    "permutation_p_value",
    "resample_counts",
    "resamples_suffice",
    "stratified_weights",
    "wilson_interval",
]
