"""Compare two models on the same prompts: the per-layer AQI difference with a paired bootstrap."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._progress import bar
from .._stats import (
    PairedWeights,
    basic_interval,
    check_confidence,
    check_n_boot,
    normal_p_value,
    resamples_suffice,
)
from ..activations.pairing import pair_by_id, shared_layers
from ..activations.store import ActivationStore
from .alignment_quality import SuffStats, aqi_from_stats, resampled_stats
from .validation import check_data

__all__ = ["AQIDifference", "Comparison", "compare"]


@dataclass(frozen=True)
class AQIDifference:
    """``AQI(a) − AQI(b)`` at one layer pair, with a paired bootstrap CI and p-value.

    The CI is the basic bootstrap interval of the paired resamples. ``p_value`` is
    the one-sided p-value of "the AQI dropped" (``Δ = AQI(a) − AQI(b) > 0``) from a
    normal fit to the paired bootstrap: ``z = Δ̂ / sd*``, ``p = Φ(−z)``, with ``sd*``
    the standard deviation of the resampled differences. It is not a count of
    resamples, so it is not floored at ``1/(n_boot + 1)``: a large drop stays
    significant after a Holm correction over many layers at any ``n_boot``. NaN (with
    a :class:`~aqi.indices.DegenerateInputWarning`) when ``sd*`` is 0 or undefined —
    e.g. a store compared with itself. Both the CI and ``p_value`` are NaN when not
    computed: ``n_boot=0``, or fewer than :func:`~aqi._stats.min_resamples` (39 at
    95 %, with a :class:`~aqi._stats.TooFewResamplesWarning`); the CI always contains
    ``difference``.
    """

    layer_a: str
    layer_b: str
    aqi_a: float
    aqi_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the CI excludes zero (False when it was not computed)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)

    @property
    def computed(self) -> bool:
        """Whether the CI and the p-value were computed (enough resamples, defined)."""
        return bool(np.isfinite(self.ci_low) and np.isfinite(self.ci_high)
                    and np.isfinite(self.p_value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Per-layer AQI differences of two stores over the prompts they share."""

    layers: tuple[AQIDifference, ...]
    n: int
    confidence: float
    n_boot: int
    model_a: str
    model_b: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n": self.n,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "layers": [d.to_dict() for d in self.layers],
        }

    def largest_drop(self) -> AQIDifference:
        """The layer where ``b`` loses the most AQI relative to ``a``."""
        return max(self.layers, key=lambda d: d.difference)

    def __repr__(self) -> str:
        d = self.largest_drop()
        return (
            f"Comparison({self.model_a!r} vs {self.model_b!r}, {len(self.layers)} layers, "
            f"n={self.n}: "
            f"largest drop at {d.layer_b}: {d.aqi_a:.1f} → {d.aqi_b:.1f}, "
            f"Δ {d.difference:.1f} [{d.ci_low:.1f}, {d.ci_high:.1f}], p={d.p_value:.3g})"
        )


def _layer_pairs(
    a: ActivationStore, b: ActivationStore, layers: Sequence[Any] | None
) -> list[tuple[str, str]]:
    if layers is not None:
        out = []
        for item in layers:
            la, lb = item if isinstance(item, tuple) else (item, item)
            out.append((a.layer_name(la), b.layer_name(lb)))
        return out
    return [(la, la) for la in shared_layers(a, b)]  # by name, never by position


def _difference(
    Xa: np.ndarray,
    Xb: np.ndarray,
    y: np.ndarray,
    weights: PairedWeights,
    *,
    lam: float,
    confidence: float,
    layers: tuple[str, str],
) -> AQIDifference:
    """``AQI(Xa) − AQI(Xb)`` on paired rows, with its paired bootstrap CI and p-value."""
    k = 2
    vals, errs = [], []
    for X in (Xa, Xb):
        Xc, codes, _ = check_data(X, y)
        stats = SuffStats.of(Xc, codes, k)
        v, _, _ = aqi_from_stats(stats, lam)
        truth, _, _ = aqi_from_stats(stats, lam, corrected=False)
        vals.append(float(v))
        if weights.n_boot:
            stats_b = resampled_stats(Xc, codes, k, weights, weights.n_boot)
            errs.append(aqi_from_stats(stats_b, lam)[0] - truth)  # mimics estimate − truth
    delta = vals[0] - vals[1]
    lo = hi = p = float("nan")
    if weights.n_boot:  # compare() set it to 0 when too few were asked
        err = errs[0] - errs[1]
        err = err[np.isfinite(err)]
        what = f"the AQI drop at {layers[1]}"
        lo, hi = basic_interval(err, 0.0, delta, confidence, f"the CI of {what}")
        p = normal_p_value(delta, err, what)
    return AQIDifference(
        layer_a=layers[0], layer_b=layers[1], aqi_a=vals[0], aqi_b=vals[1], difference=delta,
        ci_low=float(lo), ci_high=float(hi), p_value=p,
    )


def compare(
    a: ActivationStore,
    b: ActivationStore,
    *,
    pooling: str | None = None,
    layers: Sequence[Any] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    lam: float = 0.5,
    seed: int = 0,
    allow_text_mismatch: bool = False,
) -> Comparison:
    """AQI of model ``a`` minus AQI of model ``b`` per layer, on the prompts both stores hold.

    Rows are paired by id; each bootstrap resample draws the same rows (stratified by
    label) for both models, so the CI reflects the difference, not two independent
    noises. A positive difference means ``b`` separates safe from unsafe less well.

    Parameters
    ----------
    a, b : ActivationStore
        Stores of the same prompts (e.g. a base model and its fine-tune).
    layers : sequence, optional
        Layers present in both (names, block numbers, ``"@i"`` positions), or
        ``(layer_a, layer_b)`` tuples. Default: the layers both stores hold, paired by
        name (never by position); none shared is an error listing both sides.
    allow_text_mismatch : bool
        Compare even when a prompt id has different texts in the two stores (a warning
        counts them); by default that is an error, since the stores then answer
        different prompts.
    """
    n_boot, confidence = check_n_boot(n_boot), check_confidence(confidence)
    if a.span != b.span:
        raise ValueError(
            f"a reads span {a.span!r} and b span {b.span!r}: a comparison of two models reads "
            "one position in both; open both at the same span "
            "(aqi.open_store(path, span=...), CLI: --span)"
        )
    pooling = a.resolve_pooling(pooling)
    b.resolve_pooling(pooling)
    _, ia, ib = pair_by_id(a, b)
    differ = int(np.sum(a.texts[ia] != b.texts[ib]))
    if differ:
        msg = (f"{differ} of {len(ia)} prompt ids have different texts in {str(a.path)!r} and "
               f"{str(b.path)!r}: the stores were captured on different prompt sets")
        if not allow_text_mismatch:
            raise ValueError(f"{msg}; pass allow_text_mismatch=True (CLI: --allow-text-mismatch) "
                             "to compare them anyway")
        warnings.warn(f"{msg}; comparing them anyway (allow_text_mismatch=True)", stacklevel=2)
    y = a.y[ia]
    pairs = _layer_pairs(a, b, layers)
    # One set of resampling weights, replayed for every layer and both models; none
    # when too few were asked (one warning here, not one per layer).
    drawn = n_boot if resamples_suffice(n_boot, "the AQI differences", confidence) else 0
    weights = PairedWeights(tuple(np.bincount(y, minlength=2).tolist()), drawn, seed)
    out = [
        _difference(
            a.activations(la, pooling)[ia], b.activations(lb, pooling)[ib], y, weights,
            lam=lam, confidence=confidence, layers=(la, lb),
        )
        for la, lb in bar(pairs, desc="AQI difference per layer", total=len(pairs),
                          unit="layer", rows=len(y))
    ]
    return Comparison(layers=tuple(out), n=len(ia), confidence=confidence, n_boot=n_boot,
                      model_a=a.model_name, model_b=b.model_name)
