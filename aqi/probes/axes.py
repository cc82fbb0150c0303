"""Two axes of one audit: harmfulness recognition and refusal disposition.

Zhao et al. (2025) find that a chat model encodes *whether a request is harmful* at the
last token of the user's instruction (t_inst), and *whether it will refuse* at the last
token of the prompt, after the chat template's post-instruction tokens (t_post-inst);
harmful fine-tuning leaves the first nearly intact and moves the second. An audit that
reads only the instruction therefore misses the models that still recognise a harmful
request but no longer refuse it.

:func:`two_axes` reads both from one store captured with both spans (the capture
default, ``spans=("instruction", "post_instruction")``):

- **recognition**: the AQI per layer at the ``instruction`` span;
- **disposition**: the AQI per layer at the decision point (``post_instruction``, else
  ``response_onset``), and with a baseline the refusal-score shift
  (:func:`aqi.probes.refusal_shift`) — how far unsafe prompts moved toward safe, and safe
  prompts toward refusal, along the baseline's refusal direction.

The rule that turns them into a finding is :func:`aqi.checks.two_axes_check`.

References
----------
Zhao et al. 2025, "LLMs Encode Harmfulness and Refusal Separately", arXiv 2507.11878.
Arditi et al. 2024, "Refusal in Language Models Is Mediated by a Single Direction",
arXiv 2406.11717.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..activations.store import ActivationStore
from ..indices.compare import Comparison, compare
from ..indices.profile import AQIProfile, score
from .refusal_direction import RefusalShift, refusal_shift

__all__ = ["DECISION_SPANS", "RECOGNITION_SPAN", "Axis", "TwoAxes", "decision_span", "two_axes"]

RECOGNITION_SPAN = "instruction"
#: Where the refusal decision is read, in order of preference.
DECISION_SPANS: tuple[str, ...] = ("post_instruction", "response_onset")


@dataclass(frozen=True)
class Axis:
    """One axis: its span and pooling, the AQI per layer, and the change against a baseline."""

    name: str
    span: str
    pooling: str
    profile: AQIProfile
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "span": self.span,
            "pooling": self.pooling,
            "profile": self.profile.to_dict(),
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
        }


@dataclass(frozen=True)
class TwoAxes:
    """Recognition and disposition side by side (``refusal``: with a baseline only)."""

    recognition: Axis
    disposition: Axis
    refusal: RefusalShift | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recognition": self.recognition.to_dict(),
            "disposition": self.disposition.to_dict(),
            "refusal_shift": None if self.refusal is None else self.refusal.to_dict(),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per layer both axes hold: the two AQIs with their CIs (and changes)."""
        rec = {r.layer: r for r in self.recognition.profile.layers}
        dis = {r.layer: r for r in self.disposition.profile.layers}
        rc = _by_layer(self.recognition.comparison)
        dc = _by_layer(self.disposition.comparison)
        out = []
        for layer in [n for n in self.recognition.profile.names if n in dis]:
            a, b = rec[layer], dis[layer]
            out.append({
                "layer": layer,
                "recognition": a.value, "recognition_ci": [a.ci_low, a.ci_high],
                "disposition": b.value, "disposition_ci": [b.ci_low, b.ci_high],
                "recognition_change": rc.get(layer), "disposition_change": dc.get(layer),
            })  # fmt: skip
        return out

    def __repr__(self) -> str:
        def best(ax: Axis) -> str:
            try:
                r = ax.profile.best()
            except ValueError:
                return f"{ax.span}: undefined"
            return f"{ax.span}/{ax.pooling} best {r.layer} AQI {r.value:.1f}"

        tail = "" if self.refusal is None else f"; refusal shift {self.refusal.unsafe!r} SD"
        return f"TwoAxes({best(self.recognition)}; {best(self.disposition)}{tail})"


def _by_layer(cmp: Comparison | None) -> dict[str, dict[str, float]]:
    if cmp is None:
        return {}
    return {
        d.layer_b: {"difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high,
                    "p_value": d.p_value}
        for d in cmp.layers
    }  # fmt: skip


def decision_span(store: ActivationStore) -> str | None:
    """The store's decision-point span (``post_instruction``, else ``response_onset``)."""
    return next((s for s in DECISION_SPANS if s in store.spans), None)


def two_axes(
    store: ActivationStore,
    baseline: ActivationStore | None = None,
    *,
    pooling: str | None = None,
    layers: Any = None,
    n_boot: int = 1000,
    n_perm: int = 200,
    seed: int = 0,
) -> TwoAxes:
    """Recognition (instruction) and disposition (decision point) of one audited store.

    Parameters
    ----------
    store : ActivationStore
        Captured with the ``instruction`` span and a decision span (``post_instruction``
        or ``response_onset``).
    baseline : ActivationStore, optional
        The reference model on the same prompts, with the same spans: adds the per-layer
        AQI change of each axis (:func:`aqi.compare`) and the refusal-score shift.
    pooling : str, optional
        Pooling of both axes. Default ``"last"`` where stored (t_inst and t_post-inst,
        the tokens the literature reads), else the store's default.
    layers, n_boot, n_perm, seed
        As in :func:`aqi.score`.

    Raises
    ------
    ValueError
        If ``store`` (or ``baseline``) lacks a span, naming the spans it has.

    Examples
    --------
    >>> import aqi, tempfile, os
    >>> from aqi.demo import load_minilm
    >>> model, tok = load_minilm()
    >>> path = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> s = aqi.capture(model, tok, aqi.bundled_prompts()[::5], path, layers=[-1],
    ...                 spans=("instruction", "post_instruction"),
    ...                 writing=aqi.Writing(progress=False))
    >>> axes = two_axes(s, n_boot=0, n_perm=0)
    >>> axes.recognition.span, axes.disposition.span, axes.disposition.pooling
    ('instruction', 'post_instruction', 'last')
    """
    decision = decision_span(store)
    if RECOGNITION_SPAN not in store.spans or decision is None:
        raise ValueError(
            f"store {str(store.path)!r} holds spans {list(store.spans)}; the two axes need "
            f"'instruction' and a decision span ({' or '.join(DECISION_SPANS)}): capture "
            "with spans=('instruction', 'post_instruction') (the default)"
        )
    if pooling is None:
        pooling = "last" if "last" in store.poolings else None
    pool = store.resolve_pooling(pooling)
    axes = []
    for name, span in (("recognition", RECOGNITION_SPAN), ("disposition", decision)):
        view = store.with_span(span)
        profile = score(view, pooling=pool, layers=layers, n_boot=n_boot, n_perm=n_perm,
                        seed=seed)  # fmt: skip
        cmp = None
        if baseline is not None:
            cmp = compare(baseline.with_span(span), view, pooling=pool, layers=layers,
                          n_boot=n_boot, seed=seed)  # fmt: skip
        axes.append(Axis(name=name, span=span, pooling=pool, profile=profile, comparison=cmp))
    shift = None
    if baseline is not None:
        shift = refusal_shift(baseline, store, span=decision, pooling=pool, n_boot=n_boot,
                              seed=seed)  # fmt: skip
    return TwoAxes(recognition=axes[0], disposition=axes[1], refusal=shift)
