"""Plain-text tables of results, for the terminal (the command line prints these).

Every function takes a result object and returns a string: a header row, one row
per layer (or set), and at most a few summary lines. Numbers are formatted for
reading; the full precision is in each result's ``to_dict()`` (``--json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ci_text",
    "comparison_table",
    "grid",
    "ood_table",
    "profile_table",
    "refusal_table",
    "reward_table",
]


def grid(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned columns: the first column left-aligned, the rest right.

    Examples
    --------
    >>> print(grid([("layer", "AQI"), ("model.layers.0", "1.50")]))
    layer           AQI
    model.layers.0 1.50
    """
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(width[0]), *(c.rjust(w) for c, w in zip(r[1:], width[1:], strict=True))]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def ci_text(low: float, high: float, fmt: str = ".2f") -> str:
    """``[low, high]``, or ``not computed`` for an interval that was not (NaN ends)."""
    if math.isnan(low) or math.isnan(high):  # n_boot=0, or too few resamples
        return "not computed"
    return f"[{low:{fmt}}, {high:{fmt}}]"


def _est(e: Any, fmt: str = ".3f") -> str:
    """An :class:`aqi._stats.Estimate` as ``value [low, high]`` (no interval when NaN)."""
    if math.isnan(e.ci_low):  # no interval (n_boot=0)
        return f"{e.value:{fmt}}"
    return f"{e.value:{fmt}} {ci_text(e.ci_low, e.ci_high, fmt)}"


def profile_table(profile: Any) -> str:
    """The AQI profile as a plain-text table (one row per layer, then the lexical controls)."""
    rows = [("layer", "AQI", "95% CI", "null 95th", "p", "above chance")]
    for r in profile.layers:
        rows.append((r.layer, f"{r.value:.2f}", ci_text(r.ci_low, r.ci_high), f"{r.null_high:.2f}",
                     f"{r.p_value:.3f}", "yes" if r.above_chance else "no"))  # fmt: skip
    lines = [grid(rows)]
    lines += [f"lexical control ({name}): AQI {r.value:.2f} {ci_text(r.ci_low, r.ci_high)}"
              for name, r in profile.lexical.items()]  # fmt: skip
    return "\n".join(lines)


def comparison_table(cmp: Any) -> str:
    """A :class:`aqi.Comparison`: AQI of each model per layer, the difference, CI and p."""
    conf = f"{cmp.confidence:.0%} CI"
    rows = [("layer", "AQI a", "AQI b", "Δ (a − b)", conf, "p (drop)", "")]
    for d in cmp.layers:
        name = d.layer_b if d.layer_a == d.layer_b else f"{d.layer_a} / {d.layer_b}"
        rows.append((name, f"{d.aqi_a:.2f}", f"{d.aqi_b:.2f}", f"{d.difference:+.2f}",
                     ci_text(d.ci_low, d.ci_high, "+.2f"), f"{d.p_value:.3g}",
                     "significant" if d.significant else ""))  # fmt: skip
    d = cmp.largest_drop()
    return (
        f"a = {cmp.model_a or '-'}, b = {cmp.model_b or '-'}; {cmp.n} shared prompts, "
        f"paired bootstrap ({cmp.n_boot} resamples)\n{grid(rows)}\n"
        f"largest drop: {d.layer_b}, AQI {d.aqi_a:.2f} -> {d.aqi_b:.2f} "
        f"(Δ {d.difference:+.2f} {ci_text(d.ci_low, d.ci_high, '+.2f')}, p = {d.p_value:.3g})"
    )


def ood_table(rep: Any) -> str:
    """An :class:`aqi.probes.OODReport`: detection quality and what was flagged, per layer."""
    rows = [("layer", "AUROC [95% CI]", "FPR@95", "flagged", "share [95% CI]")]
    for r in rep.layers:
        det = r.detection
        k = len(r.flagged_ids)
        rows.append((r.layer, _est(det.auroc), f"{float(det.fpr_at_tpr):.3f}",
                     f"{k}/{rep.n_test}", _est(r.flag_rate)))  # fmt: skip
    b = rep.best()
    named = {c: n for c, n in b.flagged_categories.items() if c}
    cats = ", ".join(f"{c} {n}" for c, n in sorted(named.items(), key=lambda cn: -cn[1]))
    return (
        f"test {rep.test or '-'} against reference {rep.reference or '-'} "
        f"({rep.n_fit} rows fitted, {rep.n_heldout} held out to set the threshold)\n"
        f"{grid(rows)}\n"
        f"best layer: {b.layer} ({b.detector}), AUROC {_est(b.detection.auroc)}; flagged "
        f"{len(b.flagged_ids)} of {rep.n_test} at a {b.false_alarm_rate:.0%} false-alarm rate"
        + (f" (by category: {cats})" if cats else "")
    )


def _rate(r: Any) -> tuple[str, str, str]:
    decided = r.total - r.unsure  # unsure labels are out of the rate
    if decided == 0:
        return (f"0/0 ({r.total} unsure)" if r.total else "0/0", "-", "")
    return (f"{r.refused}/{decided}", f"{r.rate:.1%}", ci_text(r.ci_low, r.ci_high, ".1%"))


def refusal_table(report: Any) -> str:
    """A :class:`aqi.behaviour.RefusalReport`: refusal (unsafe) and over-refusal (safe) rates.

    Examples
    --------
    >>> from aqi.behaviour import Response, Responses, refusal_rate
    >>> rs = Responses([Response("p1", 0, "I can't help with that.", "unsafe", "crime"),
    ...                 Response("p2", 0, "Sure, here it is.", "safe", "crime")])
    >>> print(refusal_table(refusal_rate(rs)))
    category refusal (unsafe)   rate          95% CI over-refusal (safe) rate        95% CI
    all                   1/1 100.0% [20.7%, 100.0%]                 0/1 0.0% [0.0%, 79.3%]
    judge: rules (rules v2)
    """
    conf = f"{report.confidence:.0%} CI"
    rows = [("category", "refusal (unsafe)", "rate", conf, "over-refusal (safe)", "rate", conf)]
    rows.append(("all", *_rate(report.refusal), *_rate(report.over_refusal)))
    if len(report.by_category) > 1:
        for cat, d in report.by_category.items():
            rows.append((cat or "-", *_rate(d["refusal"]), *_rate(d["over_refusal"])))
    note = f"\n{report.n_empty} empty responses" if report.n_empty else ""
    if report.n_unsure:
        note += (f"\n{report.n_unsure} responses the judge was unsure of (empty, a language "
                 "it does not cover, or low confidence): left out of the rates")
    return f"{grid(rows)}\njudge: {report.judge}{note}"


def reward_table(result: Any) -> str:
    """A reward-model calibration result (or a shift report) as a plain-text table."""
    shift = hasattr(result, "shifts")
    ref = result.reference if shift else result
    rows = [("set", "pairs", "accuracy", "ECE", "Brier"),
            (ref.label or "reference", str(ref.n), _est(ref.accuracy), _est(ref.ece),
             _est(ref.brier))]  # fmt: skip
    if shift:
        for s in result.shifts:
            c = s.calibration
            rows.append((s.name, str(c.n), _est(c.accuracy), _est(c.ece), _est(c.brier)))
        calibrated = [result.reference_calibrated, *(s.calibrated for s in result.shifts)]
        for c in (c for c in calibrated if c is not None):  # held-out pairs, after calibration
            rows.append((c.label, str(c.n), _est(c.accuracy), _est(c.ece), _est(c.brier)))
    lines = [grid(rows)]
    if shift:
        lines.append(f"calibrator: {result.calibrator}")
        lines.append("")
        for s in result.shifts:
            det = ", ".join(f"{k} AUROC {float(v.auroc):.3f}" for k, v in s.detection.items())
            lines.append(f"{s.name}: accuracy drop {_est(s.accuracy_drop)}, ECE change "
                         f"{_est(s.ece_change)}" + (f"; OOD {det}" if det else ""))  # fmt: skip
    return "\n".join(lines)
